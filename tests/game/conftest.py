"""A game day: scenarios, the stages, scoring, the verdict, the review, signals and
crashes."""
