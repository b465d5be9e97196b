# shellcheck shell=bash
# Shared by tests/run and samples/demo (sourced, not executed): make sure the
# Debian packages refscope needs are installed, then configure and build the
# project in $REFSCOPE_ROOT/build.
#
# Functions return non-zero instead of exiting so the caller decides what to
# print (tests/run must always end with its "N passed, N failed" line).

# libclang-rt-14-dev: libFuzzer and the sanitizers' runtimes for clang (tests/fuzz).
# libmimalloc-dev, python3-objgraph: benchmark peers (tests/bench).
REFSCOPE_PACKAGES=(meson ninja-build libcriterion-dev libdwarf-dev libjansson-dev graphviz
                   gdb valgrind pkg-config gcc clang libclang-rt-14-dev libpython3.11-dev
                   python3 libmimalloc-dev python3-objgraph)

# Install what is missing when we are root; otherwise say what to install.
refscope_ensure_packages() {
    local missing=() pkg
    for pkg in "${REFSCOPE_PACKAGES[@]}"; do
        if ! dpkg -s "$pkg" >/dev/null 2>&1; then
            missing+=("$pkg")
        fi
    done
    if [ "${#missing[@]}" -eq 0 ]; then
        return 0
    fi
    if ! command -v dpkg >/dev/null 2>&1; then
        echo "refscope: dpkg not found; install these (Debian names): ${missing[*]}" >&2
        return 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "refscope: missing packages: ${missing[*]}" >&2
        echo "refscope: install them with: sudo apt-get install -y ${missing[*]}" >&2
        return 1
    fi
    echo "refscope: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 || return 1
    apt-get install -y -qq "${missing[@]}" >&2 || return 1
}

# Configure $2 (a build directory of the project in $1) with the meson
# options that follow. An existing build dir is reconfigured (cheap, and it
# notices a dir left by another meson version or corrupt state); when meson
# says the dir itself is unusable it is wiped and set up again. Errors in
# the project itself are reported, never "fixed" by wiping. Output goes to
# stdout; the caller may redirect it.
refscope_configure() {
    local root="$1" build="$2" out rc=0
    shift 2
    if [ -f "$build/build.ninja" ] && [ -f "$build/meson-private/coredata.dat" ]; then
        out="$(mktemp "${TMPDIR:-/tmp}/refscope-setup.XXXXXX")"
        meson setup --reconfigure "$build" "$root" "$@" >"$out" 2>&1 || rc=$?
        cat "$out"
        if [ "$rc" -ne 0 ]; then
            if grep -qiE 'generated with Meson version|incompatible|--wipe|corrupt|coredata|unpickl' "$out"; then
                echo "refscope: stale build directory; setting it up again" >&2
                rm -rf "$build"
            else
                rm -f "$out"
                return 1
            fi
        fi
        rm -f "$out"
    elif [ -e "$build" ]; then
        echo "refscope: $build is not a valid meson build directory; setting it up again" >&2
        rm -rf "$build"
    fi
    if [ ! -f "$build/build.ninja" ]; then
        meson setup "$build" "$root" "$@" || return 1
    fi
}

# Configure and build everything in $1/build.
refscope_build() {
    refscope_configure "$1" "$1/build" || return 1
    ninja -C "$1/build" || return 1
}

# The executables the tests of the given suites run, as ninja targets of
# build dir $1 (relative paths), one a line.
refscope_test_targets() {
    local build="$1"
    shift
    meson introspect "$build" --tests | python3 -c '
import json, os, sys
build, suites = os.path.realpath(sys.argv[1]), set(sys.argv[2:])
for t in json.load(sys.stdin):
    if not any(s.split(":")[-1] in suites for s in t["suite"]):
        continue
    exe = os.path.realpath(t["cmd"][0])
    if exe.startswith(build + os.sep):
        print(os.path.relpath(exe, build))
' "$build" "$@" | sort -u
}
