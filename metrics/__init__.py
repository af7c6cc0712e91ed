"""Metric functions shared by tasks; each module registers its metrics."""
