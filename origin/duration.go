package origin

import "github.com/amphi-live/amphi/internal/config"

// Duration is a time.Duration written as a string ("200ms", "2s") in config
// files, environment variables and flags.
type Duration = config.Duration
