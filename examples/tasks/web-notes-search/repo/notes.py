"""The notes the app serves (a real app would keep them in a database)."""

NOTES = [
    {"id": 1, "title": "Buy Milk", "body": "Two litres, semi-skimmed. Eggs too."},
    {"id": 2, "title": "Dentist", "body": "Thursday 9:30, bring the insurance card."},
    {"id": 3, "title": "Book club", "body": "Finish chapter 7 of Middlemarch before Friday."},
    {"id": 4, "title": "Bike repair", "body": "Rear brake squeaks; ask about the chain."},
]
