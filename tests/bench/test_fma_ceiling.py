"""The FMA ceiling probe, built and run for real: the FLOPs it claims are the instructions it
issues, and no Paddle matmul passes it (a probe that spilled its chains to memory would read
far lower and fail the second test)."""

import re
import subprocess

import pytest

from worker.bench import fma_ceiling
from worker.bench.machine import matmul_peak_gflops


def test_the_probe_issues_twelve_register_chains_of_fmas(tmp_path):
    out = tmp_path / "probe.o"
    subprocess.run(["cc", *[f for f in fma_ceiling.CFLAGS if f != "-shared"], "-c", str(fma_ceiling.SOURCE),
                    "-o", str(out)], check=True)
    listing = subprocess.run(["objdump", "-d", str(out)], check=True, capture_output=True, text=True).stdout
    loop_fmas = re.findall(r"vfmadd\w+\s+%ymm\d+,%ymm\d+,%ymm\d+", listing)
    assert len(loop_fmas) == 12  # the AVX2 loop body: 12 chains, all operands in registers


def test_the_ceiling_reads_at_least_three_quarters_of_the_matmul_peak():
    ceiling = fma_ceiling.measure_fma_ceiling(iterations=5_000_000, repeats=3)
    assert ceiling.threads >= 1 and ceiling.vector_bits in (256, 512)
    # The matmul peak is a lower bound of the ceiling; 25% margin for a busy shared host.
    matmul = matmul_peak_gflops(1024, repeats=3)
    assert ceiling.gflops > 0.75 * matmul, (ceiling, matmul)


def test_a_machine_without_vector_fmas_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(fma_ceiling, "cpu_flags", lambda: {"sse2"})
    with pytest.raises(fma_ceiling.FmaCeilingUnavailable, match="AVX2"):
        fma_ceiling.vector_bits()
