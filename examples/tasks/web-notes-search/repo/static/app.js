// Asks the server for matching notes and lists them.
const form = document.getElementById("search-form");
const input = document.getElementById("search");
const results = document.getElementById("results");
const status = document.getElementById("status");

async function show(query) {
  const response = await fetch(`/api/notes?q=${encodeURIComponent(query)}`);
  const notes = await response.json();
  results.innerHTML = "";
  for (const note of notes) {
    const card = document.createElement("article");
    card.className = "note";
    const title = document.createElement("h2");
    title.textContent = note.title;
    const body = document.createElement("p");
    body.textContent = note.body;
    card.append(title, body);
    results.appendChild(card);
  }
  status.textContent = notes.length ? `${notes.length} note(s)` : `No notes match ${query}.`;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  show(input.value);
});

show("");
