# syntax=docker/dockerfile:1
#
# docker build --build-arg VERSION=$(git describe --tags --always) -t amphi .
# docker run --rm -p 8080:8080 amphi     # the demo stream at http://localhost:8080/

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, in their own layer, so that source changes reuse it.
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/amphi ./cmd/amphi

# Static binary on distroless: no shell, runs as nonroot (uid/gid 65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/amphi /amphi
COPY configs/origin.yaml /etc/amphi/origin.yaml
# The origin's state directory defaults to "data", relative to this one,
# which belongs to the nonroot user.
WORKDIR /home/nonroot
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/amphi"]
CMD ["demo", "--listen", ":8080"]
