// Starts Swagger UI on /openapi.json. A separate file, not an inline script,
// so that /docs can send a Content-Security-Policy without 'unsafe-inline'.
(function () {
  "use strict";

  var root = document.getElementById("swagger-ui");
  var settings = root.dataset;

  var ui = window.SwaggerUIBundle({
    url: settings.specUrl,
    domNode: root,
    deepLinking: true,
    layout: "BaseLayout",
    // No request to the public validator service: everything stays on this host.
    validatorUrl: null,
    // Absolute, next to this page (the default would be /oauth2-redirect.html).
    oauth2RedirectUrl: new URL(settings.oauthRedirect, window.location.href).href,
    persistAuthorization: false,
    tryItOutEnabled: false,
    displayRequestDuration: true,
  });

  // The public first-party client: authorization code with PKCE (S256), no secret.
  ui.initOAuth({
    clientId: settings.oauthClientId,
    appName: "Agora API docs",
    usePkceWithAuthorizationCodeGrant: true,
    scopeSeparator: " ",
  });

  window.ui = ui;
})();
