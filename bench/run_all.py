"""Run every benchmark in bench/ (`make bench`)."""

from bench import dag_parse

if __name__ == "__main__":
    dag_parse.main()
