# shellcheck shell=bash
# Helpers shared by loadtest.sh and floor.sh; sourced, not run.

# split_cpus sets srv_cpus and gen_cpus to the first and the second half of
# the CPUs this process may use (comma lists, for taskset -c), so that the
# servers and the load generator each have cores of their own. It fails
# when there are fewer than two.
split_cpus() {
	local cpus=() ranges r c half
	IFS=, read -ra ranges <<<"$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status)"
	for r in "${ranges[@]}"; do
		for ((c = ${r%-*}; c <= ${r#*-}; c++)); do cpus+=("$c"); done
	done
	half=$((${#cpus[@]} / 2))
	[ "$half" -ge 1 ] || { echo "$(basename "$0"): PIN=1 needs two CPUs or more" >&2; return 1; }
	# shellcheck disable=SC2034 # set for the caller
	srv_cpus=$(IFS=,; echo "${cpus[*]:0:half}") gen_cpus=$(IFS=,; echo "${cpus[*]:half}")
}

# free_port prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
	local p
	for p in $(shuf -i 20000-29999 -n 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	echo "$(basename "$0"): no free port" >&2
	return 1
}
