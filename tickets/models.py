"""Reserved for the tickets app; its models arrive with its issue."""
