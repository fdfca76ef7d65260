"""Security and compliance: vulnerability scan, dependency and certificate reviews, posture
audit, compliance evidence."""
