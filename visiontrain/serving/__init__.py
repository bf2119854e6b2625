"""SavedModel export with explicit serving signatures, and loading for prediction."""
