"""Human review: a person's request, a reviewer's outcome, the feed, a person's decisions."""
