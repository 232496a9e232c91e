"""The migration pipeline: each VM walks an itinerary of Forklift's phases."""
