"""The fast CPU backend: a C++ paged-attention op built on first use and cached (see build.py).

`kernels.cpu.backend` holds the two seam functions; importing it builds (or loads) the op and
raises KernelBuildError when it cannot, so the registry can fall back to `reference`.
"""
