"""`trinityx explore`: the HHH trade-off map of a composed model, and its "just right" preset.

config.py (ExploreConfig), grid.py (the points swept: simplex grid, corners, router only, the
refusal dial), protocol.py (the fast judge-free scoring of one point through the harness
cache), pareto.py (HHH axes, the Pareto front, the recommendation), plots.py (ternary maps,
front, dial curve), report.py (report.md). The stage itself is stages/explore.py.
"""
