"""The fixed prompts the harness continues after every run and the sampling constants (no torch).

samples.py samples with these; the judge (roles/judge.py) judges only runs whose samples' prompts
are exactly `PROMPTS`, in order, and sends these prompts, never a peer's text for them. Importing
this module does not import torch.
"""
from __future__ import annotations

# Lower-case like the TinyStories tracks' text; a fixed set, so every run is read alike.
PROMPTS = ("once upon a time,", "one day, a little girl named lily", "the dog was very hungry.",
           "tom and his mom went to the park")
SAMPLE_SEED = 1234
TEMPERATURE = 0.8
TOP_K = 40
MAX_NEW_TOKENS = 120
MAX_TEXT_CHARS = 600          # a record bound: 4 samples of at most 600 characters
