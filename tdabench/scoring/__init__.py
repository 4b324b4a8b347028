"""Scoring an estimator against a ground truth: agreement metrics and the noise ceiling
(`metrics`), bootstrap intervals and shared ranks (`stats`), time and peak memory (`costs`)."""
