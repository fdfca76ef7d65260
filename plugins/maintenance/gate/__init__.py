"""The gate every maintenance DAG passes through: blockers (pure) and the sensor."""
