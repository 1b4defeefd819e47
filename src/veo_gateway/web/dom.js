// Small DOM helpers shared by the playground's modules.

export const $ = (id) => document.getElementById(id);

// An element with its properties (class, text, data-* attributes, DOM properties) and children.
export function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-")) node.setAttribute(key, value);
    else node[key] = value;
  }
  for (const child of children) node.append(child);
  return node;
}
