#!/usr/bin/env bash
# The native core is built with the Rust toolchain pinned in native/rust-toolchain.toml. Make sure rustup can
# use it: installed already, installable (where static.rust-lang.org is reachable), or the host's stable
# toolchain when that is exactly the pinned version (linked under the pinned name, nothing downloaded).
set -euo pipefail
cd "$(dirname "$0")/../native"
want="$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)"
if ! command -v cargo >/dev/null || ! command -v rustup >/dev/null; then
    echo "error: the native core needs Rust $want through rustup (https://rustup.rs), then: rustup toolchain install $want" >&2
    exit 1
fi
if rustup run "$want" rustc --version >/dev/null 2>&1; then
    exit 0
fi
if rustup toolchain install "$want" --profile minimal >/dev/null 2>&1; then
    exit 0
fi
stable="$(rustup run stable rustc --version 2>/dev/null | awk '{print $2}')"
if [ "$stable" = "$want" ]; then
    rustup toolchain link "$want" "$(rustup run stable rustc --print sysroot)"
    echo "rust: linked the host's stable toolchain ($stable) as $want"
    exit 0
fi
echo "error: Rust $want is pinned (native/rust-toolchain.toml) but not installed, and could not be installed;" \
     "the host's stable is ${stable:-absent}. Install it with: rustup toolchain install $want" >&2
exit 1
