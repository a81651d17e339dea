"""The hybrid data pipeline: teacher samples in both modes, mode choice, judge rationales, datasets."""
