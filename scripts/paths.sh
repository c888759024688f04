# Sourced by the scripts (not run): where things are, from the repository alone.
#   repo      the repository root
#   target    cargo's target directory (`cargo metadata`: honours CARGO_TARGET_DIR and
#             .cargo/config), so `$target/release/k8soidc` is what `cargo build --release` made
#   fixtures  the real-file fixtures, tests/data/fixtures (origins in its SOURCES)
# and `check_paths NAME FILE...`: the `--check` mode of a demo or bench script, which prints
# the binary and the files it would use, fails when one is missing, builds and starts nothing.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
fixtures=$repo/tests/data/fixtures

check_paths() {
  local name=$1 f status=0
  shift
  echo "$name: binary $target/release/k8soidc (cargo build --release)"
  for f in "$@"; do
    if [ -e "$f" ]; then
      echo "$name: uses ${f#"$repo"/}"
    else
      echo "$name: missing ${f#"$repo"/}" >&2
      status=1
    fi
  done
  return $status
}
