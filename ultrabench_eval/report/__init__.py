"""Report: leaderboard tables and their renderers, plots and the HTML report."""
