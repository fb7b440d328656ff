"""Reserved for the billing app; its models arrive with its issue."""
