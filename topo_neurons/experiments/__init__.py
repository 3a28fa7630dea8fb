"""The protocol of "Decorrelating neurons using persistence": data, models, sweep, statistics."""
