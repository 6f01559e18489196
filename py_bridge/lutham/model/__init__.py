"""The model side: the KAN layer and its forward (kan.py), multi-head models, conversion and loading."""
