"""The bench report: one table of workloads, one of kernels, the verdict on each target."""

from pydantic import BaseModel

from worker.bench.attention import AttentionResult
from worker.bench.engine_run import WorkloadResult
from worker.bench.guided import GuidedReport
from worker.bench.machine import MachineInfo, MachineLimits
from worker.bench.matmul_limit import MatmulLimit
from worker.bench.sampler import SamplerResult


class Target(BaseModel):
    name: str
    measured: float | None
    goal: float
    higher_is_better: bool = True
    unit: str = ""

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured >= self.goal if self.higher_is_better else self.measured < self.goal


class BenchReport(BaseModel):
    command: str
    quick: bool
    info: MachineInfo
    limits: MachineLimits
    workloads: list[WorkloadResult]
    attention: list[AttentionResult]
    total_seconds: float
    sampler: list[SamplerResult] = []
    guided: GuidedReport | None = None
    matmul_limits: list[MatmulLimit] = []

    def result(self, name: str, engine: str = "ours") -> WorkloadResult | None:
        return next((r for r in self.workloads if r.name == name and r.engine == engine), None)

    def matmul_limit(self, step: str) -> MatmulLimit | None:
        return next((m for m in self.matmul_limits if m.step == step), None)

    def kernel(self, backend: str) -> AttentionResult | None:
        return next((a for a in self.attention if a.backend == backend), None)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else a / b


def targets(r: BenchReport) -> list[Target]:
    peak, copy = r.limits.peak_gflops, r.limits.copy_gbps
    decode, prefill = r.result("decode"), r.result("prefill")
    on, off = r.result("prefix-on"), r.result("prefix-off")
    ours, theirs = r.result("baseline"), r.result("baseline", "paddleformers")
    sched, fast, ref = r.result("scheduler"), r.kernel("cpu"), r.kernel("reference")
    guided_extra = max((g.extra_ms for g in r.guided.results), default=None) if r.guided else None
    mm_decode, mm_prefill = r.matmul_limit("decode"), r.matmul_limit("prefill")
    return [
        Target(name="decode-heavy: model FLOP/s / matmul peak (issue 17)",
               measured=_ratio(decode and decode.gflops, peak), goal=0.8),
        Target(name="prefill-heavy: model FLOP/s / matmul peak (issue 17)",
               measured=_ratio(prefill and prefill.gflops, peak), goal=0.9),
        Target(name="limit: decode step's matmuls alone (M=64) / matmul peak (issue 17: the decode goal's ceiling)",
               measured=_ratio(mm_decode and mm_decode.gflops, peak), goal=0.8),
        Target(name="limit: prefill step's matmuls alone / matmul peak (issue 17: the prefill goal's ceiling)",
               measured=_ratio(mm_prefill and mm_prefill.gflops, peak), goal=0.9),
        Target(name="reduced decode: ours / paddleformers output tok/s",
               measured=_ratio(ours and ours.output_tokens_per_s, theirs and theirs.output_tokens_per_s), goal=20, unit="x"),
        Target(name="shared prefix: caching off / on, end-to-end time",
               measured=_ratio(off and off.seconds, on and on.seconds), goal=3, unit="x"),
        Target(name="scheduler: engine host ms per decode step of 64 seqs (2-layer model, forward excluded)",
               measured=sched and sched.decode_host_ms, goal=3, higher_is_better=False, unit="ms"),
        Target(name="scheduler: the same step with the 2-layer forward included",
               measured=sched and sched.decode_step_ms, goal=3, higher_is_better=False, unit="ms"),
        Target(name="attention: cpu backend KV GB/s / copy bandwidth", measured=_ratio(fast and fast.gbps, copy), goal=0.5),
        Target(name="attention: cpu backend speed-up over reference",
               measured=_ratio(ref and ref.seconds, fast and fast.seconds), goal=3, unit="x"),
        Target(name="guided decoding: worst extra ms of 64 constrained rows / 64-sequence decode step",
               measured=_ratio(guided_extra, decode and decode.decode_step_ms), goal=0.1, higher_is_better=False),
        Target(name="bench wall time", measured=r.total_seconds / 60, goal=20, higher_is_better=False, unit="min"),
    ]


METHOD = [
    "## Method", "",
    "- Workloads: random-token prompts, greedy, EOS ignored; seconds are end-to-end wall time from "
    "queuing the requests to the last output (model loaded and warmed up before).",
    "- Model FLOPs: 2 x decoder weights x tokens computed + 2 x LM-head weights x sampled rows + "
    "attention (4 x head_dim x query heads x visible keys per layer); prefix-cache hits are not computed, "
    "so they do not count. paddleformers is credited with the same FLOPs for the same work.",
    "- ms/decode step: mean engine.step() wall time over steps that decode every request (host time, "
    "i.e. without the model forward, in brackets).",
    "- Matmul peak, copy bandwidth and the attention kernels: measured before and after the workloads, "
    "best of the repeats after a warm-up (the machine is shared: the best is the least disturbed); "
    "copy bandwidth counts bytes read plus bytes written (STREAM), one thread or one per core, whichever is faster.",
    "",
]


def _fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:,.{digits}f}"


def workload_table(r: BenchReport) -> list[str]:
    peak = r.limits.peak_gflops
    rows = ["| workload | engine | requests | prompt tok | output tok | cached tok | seconds | output tok/s "
            "| model GFLOP/s | % of matmul peak | ms/decode step (host) |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for w in r.workloads:
        step = "" if w.decode_step_ms is None else f"{w.decode_step_ms:.2f} ({w.decode_host_ms:.2f})"
        rows.append(f"| {w.name} | {w.engine} | {w.num_requests} | {w.prompt_tokens} | {w.output_tokens} "
                    f"| {w.cached_tokens} | {w.seconds:.2f} | {w.output_tokens_per_s:,.1f} | {w.gflops:.1f} "
                    f"| {100 * w.gflops / peak:.0f}% | {step} |")
    return rows


def kernel_table(r: BenchReport) -> list[str]:
    rows = ["| attention backend | ms per call | KV read GB/s | % of copy bandwidth |", "|---|---:|---:|---:|"]
    for a in r.attention:
        rows.append(f"| {a.backend} | {1e3 * a.seconds:.2f} | {a.gbps:.1f} | {100 * a.gbps / r.limits.copy_gbps:.0f}% |")
    return rows


def sampler_table(r: BenchReport) -> list[str]:
    if not r.sampler:
        return []
    s = r.sampler[0]
    return [f"## Sampler ({s.rows} rows x {s.vocab_size:,} vocabulary)", "",
            "| sampling parameters | ms per step |", "|---|---:|",
            *(f"| {x.setting} | {1e3 * x.seconds:.2f} |" for x in r.sampler), ""]


def guided_table(r: BenchReport) -> list[str]:
    if r.guided is None:
        return []
    g, decode = r.guided, r.result("decode")
    step = decode.decode_step_ms if decode else None
    rows = [f"## Guided decoding ({g.results[0].rows} rows x {g.results[0].vocab_size:,} vocabulary)", "",
            f"Host ms per decode step around the forward pass (mask, sampler, matchers), greedy; the "
            f"vocabulary was handed to llguidance once in {g.vocab_build_seconds:.2f} s.", "",
            "| constraint | steps | min ms | median ms | unconstrained min | unconstrained median "
            "| ratio (medians) | extra ms | extra / decode step |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for x in g.results:
        share = "n/a (run with decode)" if step is None else f"{100 * x.extra_ms / step:.1f}%"
        rows.append(f"| {x.constraint} | {x.steps} | {x.min_ms:.2f} | {x.median_ms:.2f} | {x.unconstrained_min_ms:.2f} "
                    f"| {x.unconstrained_median_ms:.2f} | {x.ratio:.1f}x | {x.extra_ms:.2f} | {share} |")
    return [*rows, ""]


def matmul_limit_table(r: BenchReport) -> list[str]:
    if not r.matmul_limits:
        return []
    rows = ["## Matmul limit (issue 17)", "",
            "The step's projections (all layers) and LM head alone, at their real shapes, on the engine's "
            "weights, no other op; best of the repeats.", "",
            "| step | decoder rows (M) | LM head rows | GFLOP | ms | GFLOP/s | % of matmul peak |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for m in r.matmul_limits:
        rows.append(f"| {m.step} | {m.rows} | {m.sampled} | {m.flops / 1e9:.1f} | {1e3 * m.seconds:.1f} "
                    f"| {m.gflops:.1f} | {100 * m.gflops / r.limits.peak_gflops:.0f}% |")
    return [*rows, ""]


def target_table(r: BenchReport) -> list[str]:
    rows = ["| target | measured | goal | met |", "|---|---:|---:|---|"]
    for t in targets(r):
        cmp = ">=" if t.higher_is_better else "<"
        met = {True: "yes", False: "NO", None: "n/a"}[t.met]
        rows.append(f"| {t.name} | {_fmt(t.measured)}{t.unit} | {cmp} {t.goal:g}{t.unit} | {met} |")
    return rows


def baseline_agreement(r: BenchReport) -> str | None:
    """Same greedy tokens as paddleformers on the baseline prompts: a correctness check."""
    ours, theirs = r.result("baseline"), r.result("baseline", "paddleformers")
    if ours is None or theirs is None:
        return None
    same = sum(a == b for a, b in zip(ours.output_token_ids, theirs.output_token_ids))
    return f"- greedy output tokens identical to paddleformers' on {same} of {len(theirs.output_token_ids)} baseline prompts"


def render(r: BenchReport) -> str:
    i, lim = r.info, r.limits
    agreement = baseline_agreement(r)
    lines = [
        "# Benchmark results" + (" (--quick: smoke-test shapes, not comparable)" if r.quick else ""), "",
        f"- command: `{r.command}`",
        f"- machine: {i.cpu_model}, {i.cores} cores; paddle {i.paddle_version}; "
        f"OMP_NUM_THREADS={i.omp_num_threads}, MKL_DEBUG_CPU_TYPE={i.mkl_debug_cpu_type}",
        f"- date: {i.date}; bench wall time {r.total_seconds / 60:.1f} min",
        f"- same-run limits: fp32 paddle.matmul {lim.matmul_size}x{lim.matmul_size} = {lim.matmul_gflops:.1f} GFLOP/s; "
        + ("" if lim.panel_gflops is None else
           f"our panel GEMM at the same size = {lim.panel_gflops:.1f} GFLOP/s; ")
        + f"the matmul peak (the faster, what % of matmul peak is of) = {lim.peak_gflops:.1f} GFLOP/s; "
        f"copy bandwidth = {lim.copy_gbps:.1f} GB/s (read + write, {lim.copy_bytes >> 20} MiB array); "
        + ("FMA ceiling not measured here" if lim.fma_gflops is None else
           f"FMA ceiling (every core, register-only FMAs) = {lim.fma_gflops:.1f} GFLOP/s, the matmul peak "
           f"is {lim.peak_gflops / lim.fma_gflops:.0%} of it"),
        *([agreement] if agreement else []),
        "", "## Workloads", "", *workload_table(r), "", "## Attention kernel (decode)", "", *kernel_table(r),
        "", *matmul_limit_table(r), *sampler_table(r), *guided_table(r),
        "## Targets (issues 6, 17)", "", *target_table(r), "", *METHOD,
    ]
    return "\n".join(lines)
