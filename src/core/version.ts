/**
 * cvm's version: one constant for the server's build info, the OpenAPI
 * document and `cvm version`, so the client and the server report the same
 * way. Its unit test holds it equal to package.json's.
 */

export const cvmVersion = "0.1.0";
