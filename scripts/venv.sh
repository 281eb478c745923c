# venv.sh (sourced): create .venv on Debian's python3 with system site packages, install benchrun.
VENV="${BENCHRUN_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
export CMAKE_ARGS="${CMAKE_ARGS:-} -DBENCHRUN_BUILD_TESTS=ON"
python -m pip install -q --no-build-isolation --no-deps --no-index . 
