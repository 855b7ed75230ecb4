"""The person's page: a private link to their own decision, and the contest from it
(docs/person.md)."""
