"""Builds benchrun's C++ extension (benchrun._core) with CMake during `pip install .`.

The CMake build directory is kept under build/ in the source tree, so repeated installs are
incremental and scripts/test.sh runs ctest from the very same build.
Extra CMake arguments come from $CMAKE_ARGS; parallelism from $CMAKE_BUILD_PARALLEL_LEVEL.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(os.environ.get("BENCHRUN_BUILD_DIR", ROOT / "build" / "cmake"))
        build_dir.mkdir(parents=True, exist_ok=True)
        args = [
            "cmake",
            "-S", str(ROOT),
            "-B", str(build_dir),
            f"-DPython3_EXECUTABLE={sys.executable}",
            f"-DBENCHRUN_PYTHON_OUTPUT_DIR={out_dir}",
            "-DBENCHRUN_BUILD_PYTHON=ON",
        ]
        if (build_dir / "build.ninja").exists() or not (build_dir / "Makefile").exists():
            if subprocess.run(["sh", "-c", "command -v ninja"], capture_output=True).returncode == 0:
                args += ["-G", "Ninja"]
        args += shlex.split(os.environ.get("CMAKE_ARGS", ""))
        subprocess.check_call(args)
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
        targets = ["_core"] + (["benchrun-init"] if any((ROOT / "guest" / "init").glob("*.cpp")) else [])
        targets.append("benchrun-calibrate")
        targets.append("benchrun-vglaunch")
        targets.append("benchrun-pid1")
        subprocess.check_call(["cmake", "--build", str(build_dir), "--target", *targets, "-j", jobs])


setup(ext_modules=[CMakeExtension("benchrun._core")], cmdclass={"build_ext": CMakeBuild})
