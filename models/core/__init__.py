"""Generic machinery shared by every process; knows no process."""
