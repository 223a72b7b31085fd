"""Test helper: a transformers model's outputs, the reference our model must equal."""

import numpy as np


def torch_logits(hf_model, ids, types, mask) -> np.ndarray:
  """A transformers model's logits on numpy int inputs."""
  import torch  # noqa: PLC0415 - heavy; only where a test compares with transformers
  with torch.no_grad():
    return hf_model(input_ids=torch.tensor(ids, dtype=torch.long),
                    token_type_ids=torch.tensor(types, dtype=torch.long),
                    attention_mask=torch.tensor(mask, dtype=torch.long)).logits.numpy()
