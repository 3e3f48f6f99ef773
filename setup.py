"""Builds the optional fused CPU scan kernel; everything else is in pyproject.toml."""
import sys

from setuptools import Extension, setup

compile_args = [] if sys.platform == "win32" else ["-O3", "-std=gnu11"]
setup(
    ext_modules=[
        Extension(
            "pose3d._scan_kernel",
            sources=["pose3d/csrc/selective_scan.c"],
            depends=["pose3d/csrc/scan_impl.h"],
            extra_compile_args=compile_args,
            optional=True,  # without a C compiler pose3d still installs and uses the torch scan
        )
    ]
)
