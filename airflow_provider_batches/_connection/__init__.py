"""From an Airflow connection to the settings a client needs: extras, base URL, header
values."""
