"""Build the C/Cython core.

Developer switches (environment variables):
  PYSTREAM_DEBUG=1     -O0 -g, C asserts on, Cython boundscheck on
  PYSTREAM_SANITIZE=1  AddressSanitizer + UndefinedBehaviorSanitizer
"""
import os
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("PYSTREAM_DEBUG") == "1"
SANITIZE = os.environ.get("PYSTREAM_SANITIZE") == "1"

compile_args = ["-std=c11", "-Wall", "-Wno-unused-function", "-Wno-unreachable-code"]
link_args = []
macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
if DEBUG:
    compile_args += ["-O0", "-g", "-UNDEBUG"]
    macros.append(("PS_DEBUG", "1"))
else:
    compile_args += ["-O3", "-DNDEBUG"]
if SANITIZE:
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    compile_args += san + ["-g"]
    link_args += san
if sys.platform == "win32":  # pragma: no cover - MSVC flags
    compile_args, link_args = [], []

INCLUDE = ["csrc", numpy.get_include()]


def ext(name, sources=()):
    return Extension(
        f"pystream._core.{name}",
        [f"pystream/_core/{name}.pyx", *sources],
        include_dirs=INCLUDE,
        extra_compile_args=compile_args,
        extra_link_args=link_args,
        define_macros=macros,
    )


extensions = [
    ext("status", ["csrc/ps_status.c"]),
    ext("hashing"),
    ext("serialisation", ["csrc/ps_frame.c"]),
    ext("deserialisation", ["csrc/ps_frame.c"]),
    ext("partitioning", ["csrc/ps_partition.c"]),
    ext("agg_kernel", ["csrc/ps_agg.c", "csrc/ps_bigmem.c"]),
    ext("aggregation", ["csrc/ps_agg.c", "csrc/ps_bigmem.c"]),
    ext("groupby", ["csrc/ps_agg.c", "csrc/ps_bigmem.c"]),
    ext("keyed_state"),
    ext("state"),
    ext("memory", ["csrc/ps_arena.c"]),
]

# Developers may build a subset while another module is mid-edit: PYSTREAM_ONLY=status,hashing
only = {n for n in os.environ.get("PYSTREAM_ONLY", "").split(",") if n}
if only:
    extensions = [e for e in extensions if e.name.rsplit(".", 1)[1] in only]

directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": DEBUG,
    "embedsignature": True,
}

setup(ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["pystream/_core"]))
