"""The leaderboard reporter: results/ -> leaderboard/site/{index.html,leaderboard.csv,.json}."""
