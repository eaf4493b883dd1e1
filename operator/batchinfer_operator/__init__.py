"""The BatchInference operator; `kopf run -m batchinfer_operator` registers its handlers on import.

Never imports paddle or numpy: the operator image installs only the `operator` extra."""

from batchinfer_operator import handlers  # noqa: F401  (registers the kopf handlers)
