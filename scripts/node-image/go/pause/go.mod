module airflow-platform.local/pause

go 1.24
