-- one Postgres, two databases: MLflow's tracking + registry store, and Prefect's
CREATE DATABASE mlflow OWNER labelwise;
CREATE DATABASE prefect OWNER labelwise;
