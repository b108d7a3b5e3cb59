"""Data conventions every family follows, so that inference needs no per-family code: the
observation dimension is ``obs_id``; the design matrix is ``pm.Data("X")``, the outcome
``pm.Data("y")``; the likelihood is the observed variable ``y_obs``."""

OBS_DIM = "obs_id"
