# venv.sh (sourced): create .venv on Debian's python3 with system site packages, install benchrun.
VENV="${BENCHRUN_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
# shellcheck disable=SC1091
source "$(dirname "${BASH_SOURCE[0]}")/ccache.sh"
export CMAKE_ARGS="${CMAKE_ARGS:-} ${BENCHRUN_LAUNCHER[*]} -DBENCHRUN_BUILD_TESTS=ON"
python -m pip install -q --no-build-isolation --no-deps --no-index . 
# The notebooks name the "benchrun" kernel. It is registered inside the venv
# (.venv/share/jupyter/kernels/benchrun, running the venv's python), which Jupyter searches when the
# front end runs from the venv: `python -m notebook`. Per venv, so checkouts do not overwrite each
# other's kernel; Debian's /usr/bin/jupyter (prefix /usr) sees only /usr/bin/python3's kernel.
# (-Xfrozen_modules=off: quiets the warning debugpy prints on import.)
python -Xfrozen_modules=off -m ipykernel install --sys-prefix --name benchrun --display-name benchrun >/dev/null
