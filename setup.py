"""jaxrnn's one compiled part: the oneDNN custom calls of ``jaxrnn/cells/_onednn.cc``.

Everything else is in ``pyproject.toml``. The extension is optional: where it does not
build (no C++ compiler, another platform than Linux x86-64), jaxrnn installs without it
and runs every cell on XLA (``jaxrnn.onednn.available()`` says which).
"""

import importlib.metadata
import os

from setuptools import Extension, setup


def _located(dist: str, suffix: str) -> str:
    """The directory holding ``suffix`` in an installed distribution (the build
    requirements: where pip put them, in an isolated build environment or not)."""
    found = importlib.metadata.distribution(dist)
    for f in found.files or ():
        if str(f).endswith(suffix):
            return os.path.normpath(str(found.locate_file(f))[: -len(suffix)])
    raise FileNotFoundError(f"{suffix} not found in {dist}")


def _dirs() -> tuple[list[str], list[str]]:
    import jaxlib  # the XLA FFI headers

    include = [
        os.path.join(os.path.dirname(jaxlib.__file__), "include"),
        _located("onednn-devel-cpu-gomp", "oneapi/dnnl/dnnl.hpp"),
    ]
    return include, [_located("onednn-cpu-gomp", "libdnnl.so")]


try:
    INCLUDE, LIBRARY = _dirs()
except (ImportError, importlib.metadata.PackageNotFoundError, FileNotFoundError):
    INCLUDE, LIBRARY = [], []  # not buildable here: the optional extension fails, skipped


setup(
    ext_modules=[
        Extension(
            "jaxrnn.cells._onednn_lib",
            sources=["jaxrnn/cells/_onednn.cc"],
            include_dirs=INCLUDE,
            library_dirs=LIBRARY,
            libraries=["dnnl"],
            # -fno-trapping-math: the LSTM cell's loops vectorise (GCC if-converts them);
            # -ffp-contract=fast: gemv()'s vector products and sums become FMAs
            extra_compile_args=[
                "-std=c++17",
                "-O2",
                "-fno-trapping-math",
                "-ffp-contract=fast",
                "-fopenmp",
                "-Wno-attributes",
            ],
            extra_link_args=["-fopenmp"],
            language="c++",
            optional=True,
        )
    ]
)
