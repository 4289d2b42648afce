/** Tiny DOM builders, so widgets read as structure rather than createElement calls. */

type Child = Node | string | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string | number | boolean | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) {
      continue;
    }
    if (key === 'className') {
      element.className = String(value);
    } else {
      element.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(element, ...children);
  return element;
}

export function append(parent: Element, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    parent.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
  }
}

export function button(label: string, ariaLabel: string, onClick: () => void, className = ''): HTMLButtonElement {
  const element = h('button', { type: 'button', className: `jp-Button bai-Button ${className}`, 'aria-label': ariaLabel, title: ariaLabel }, label);
  element.addEventListener('click', event => {
    event.stopPropagation();
    onClick();
  });
  return element;
}

export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.textContent = '';
  append(parent, ...children);
}

/** A state shown as a coloured badge (colours from the theme, see style/base.css). */
export function stateBadge(state: string): HTMLElement {
  return h('span', { className: `bai-State bai-State-${state}`, 'data-state': state }, state);
}
