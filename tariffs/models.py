"""What heat may cost: plant, hourly series, price caps, tariffs and their versions."""
