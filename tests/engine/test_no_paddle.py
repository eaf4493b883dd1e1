import subprocess
import sys

HOST_MODULES = [
    "worker.sampling_params",
    "worker.outputs",
    "worker.engine.sequence",
    "worker.engine.block_manager",
    "worker.engine.scheduler",
    "worker.engine.sampler",
    "worker.engine.stop_checker",
    "worker.engine.input_batch",
    "worker.guided_decoding",
    "worker.engine.guided",
    "worker.engine.token_mask",
    "worker.engine.grammar_vocab",
]


def test_host_logic_never_imports_paddle():
    code = "import sys\n" + "".join(f"import {m}\n" for m in HOST_MODULES) + "print('paddle' in sys.modules)\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
