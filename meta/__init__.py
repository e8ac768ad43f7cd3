"""Tasks and what is learnt across them: task distributions (`tasks`), the task graph and its GCN encoder, the
controller that turns a task embedding into architecture logits, the weight initializer, meta-training and
adaptation on a new task."""
import warnings

# torch-geometric 2.8 calls torch.jit.script at import time, which torch 2.14 flags as deprecated: noise for users.
warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
