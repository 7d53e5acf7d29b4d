-- one Postgres, three databases: MLflow's tracking + registry store, MLflow's users (basic
-- auth), and Prefect's
CREATE DATABASE mlflow OWNER labelwise;
CREATE DATABASE mlflow_auth OWNER labelwise;
CREATE DATABASE prefect OWNER labelwise;
