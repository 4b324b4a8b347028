"""The tuned track (issue 18): hyperparameters chosen per task on validation test points, never on
scored ones (docs/method.md, the unified view).

Modules, each importing only those after it: `track` (`run_tuned_track`, the tuned track of one
comparison: validation gold standard, sweeps, the chosen settings scored), `sweep` (fit every candidate of an estimator's search
space, agreement with the validation gold standard, selection per horizon and overall), `split` (the
validation test points: the task's test points that compare does not score, disjoint by assertion),
`choice` (`TunedChoice`, the record written to results.json under "tuned").
"""

from __future__ import annotations

from tdabench.tuning.choice import (TUNED_KEY, TUNED_PER_HORIZON_SUFFIX, TUNED_SUFFIX, Candidate, TunedChoice,
                                    tuned_choices)
from tdabench.tuning.split import validation_config, validation_indices
from tdabench.tuning.sweep import candidates, search_space_of, select, sweep
from tdabench.tuning.track import TunedTrack, run_tuned_track

__all__ = ["Candidate", "TUNED_KEY", "TUNED_PER_HORIZON_SUFFIX", "TUNED_SUFFIX", "TunedChoice", "candidates", "search_space_of", "select",
           "sweep", "TunedTrack", "run_tuned_track", "tuned_choices", "validation_config", "validation_indices"]
