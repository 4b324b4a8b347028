"""The salient Harsanyi interactions of a final model on test points (`tdabench interactions`):
`salient` computes them before and after further training, `report` prints and writes them."""

from tdabench.interactions.report import read_interactions, render_interactions, write_interactions
from tdabench.interactions.salient import InteractionOptions, salient_interactions

__all__ = ["InteractionOptions", "read_interactions", "render_interactions", "salient_interactions",
           "write_interactions"]
