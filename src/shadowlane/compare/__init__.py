"""The comparator: joins prod and shadow responses and scores how far the candidate drifted.

Semantic drift ΔS is ``1 − cosine`` of sentence embeddings (see :mod:`shadowlane.compare.embedder`).
"""
