/** The app's entry: the theme, the cart, the router. */

import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { RouterProvider } from "react-router/dom";
import "./theme.css";
import "./auth";
import { CartProvider } from "./cart/CartContext";
import { createRouter } from "./router";

const router = createRouter();

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <CartProvider>
      <RouterProvider router={router} />
    </CartProvider>
  </StrictMode>,
);
