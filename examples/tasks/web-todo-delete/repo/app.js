// A todo list kept in memory: add with the form, remove with each row's Delete button.
const todos = [];
let nextId = 1;

const form = document.getElementById("new-todo");
const input = document.getElementById("title");
const list = document.getElementById("list");
const counter = document.getElementById("counter");

function addTodo(title) {
  todos.push({ id: nextId++, title });
}

function removeTodo(id) {
  const at = todos.findIndex((todo) => todo.id === id);
  if (at !== -1) todos.splice(at, 1);
}

function render() {
  list.innerHTML = "";
  todos.forEach((todo, index) => {
    const item = document.createElement("li");
    item.className = "todo";
    item.dataset.index = String(index);
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = todo.title;
    const remove = document.createElement("button");
    remove.className = "delete";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete ${todo.title}`);
    item.append(title, remove);
    list.appendChild(item);
  });
  const n = todos.length;
  counter.textContent = `${n} item${n === 1 ? "" : "s"} left`;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const title = input.value.trim();
  if (!title) return;
  addTodo(title);
  input.value = "";
  render();
});

// One listener for every row's Delete button.
list.addEventListener("click", (event) => {
  if (!event.target.matches(".delete")) return;
  const index = Number(event.target.closest("li").dataset.index);
  removeTodo(todos[index + 1].id);
  render();
});

render();
