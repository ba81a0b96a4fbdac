"""jaxrnn's one compiled part: the oneDNN custom calls of ``jaxrnn/cells/_onednn.cc``.

Everything else is in ``pyproject.toml``. The extension is optional: where it does not
build (no C++ compiler, another platform than Linux x86-64), jaxrnn installs without it
and runs every cell on XLA (``jaxrnn.cells._onednn.available()`` says which).
"""

import os
import sysconfig

from setuptools import Extension, setup


def _include_dirs() -> list[str]:
    import jaxlib  # the XLA FFI headers (a build requirement)

    # oneDNN's headers: the onednn-devel-cpu-gomp build requirement, under the prefix
    return [os.path.join(os.path.dirname(jaxlib.__file__), "include"), _prefix("include")]


def _prefix(sub: str) -> str:
    return os.path.join(sysconfig.get_paths()["data"], sub)


setup(
    ext_modules=[
        Extension(
            "jaxrnn.cells._onednn_lib",
            sources=["jaxrnn/cells/_onednn.cc"],
            include_dirs=_include_dirs(),
            library_dirs=[_prefix("lib")],
            libraries=["dnnl"],
            extra_compile_args=["-std=c++17", "-O2", "-fopenmp", "-Wno-attributes"],
            extra_link_args=["-fopenmp"],
            language="c++",
            optional=True,
        )
    ]
)
