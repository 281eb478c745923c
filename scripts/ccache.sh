# ccache.sh (sourced by venv.sh, test.sh, fuzz.sh): route every C/C++ build through ccache when it
# is installed. The cache is machine-wide (CCACHE_DIR, default /var/cache/benchrun/ccache) so any
# checkout on the host - a worktree, CI's clean clone - reuses what another compiled; hits are by
# content (preprocessed source, flags, compiler), so a stale entry cannot be used. CCACHE_BASEDIR
# (default: the checkout's parent) makes the checkout's absolute paths relative, so checkouts at
# different places share entries. Sets BENCHRUN_LAUNCHER (cmake arguments, empty without ccache).
BENCHRUN_LAUNCHER=()
if command -v ccache >/dev/null 2>&1; then
  export CCACHE_DIR="${CCACHE_DIR:-/var/cache/benchrun/ccache}"
  export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
  # Debug info names the compile directory; without this the directory is hashed (-g) and each
  # checkout would miss. The cost: a cached object may name another checkout as its directory.
  export CCACHE_NOHASHDIR=1
  mkdir -p "$CCACHE_DIR"
  BENCHRUN_LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
