// Accounts in the page (docs/tracker.md, "Accounts"): signing in with a name and a password (a
// connection without a token may call `TrackerAccounts.login` and nothing else), and the account
// dialogs of a signed-in session: add a device (its enrolment QR code, shown once), share a
// device, manage users (admins).

import { Client, RpcError } from "@rpcgen/client";

import * as tracker from "../generated/examples/tracker.js";
import { describe, element } from "./connection.js";

/** A token and when it expires. */
export interface Session {
  readonly token: string;
  /** ms since the Unix epoch. */
  readonly expiresMs: number;
}

/** Signs in over a short-lived anonymous connection; rejects with the gateway's or the service's error. */
export async function login(gateway: string, name: string, password: string): Promise<Session> {
  const client = new Client({ endpoints: [gateway], name: "tracker-login", defaultTimeoutMs: 10_000 });
  try {
    const accounts = new tracker.TrackerAccountsClient(client);
    return sessionOf(await accounts.login(new tracker.LoginT({ name, password })));
  } finally {
    void client.close();
  }
}

export function sessionOf(reply: tracker.Session): Session {
  return { token: reply.token() ?? "", expiresMs: Number(reply.expiresMs()) };
}

/** An error as the account dialogs word it: the declared error's meaning when there is one. */
export function explain(error: unknown): string {
  switch (tracker.trackerAccountsError(error)) {
    case "BadCredentials":
      return "wrong name or password";
    case "TooManyAttempts":
      return error instanceof RpcError ? error.text : "too many failed sign-ins: wait a little";
    default:
      return describe(error);
  }
}

function roleName(role: tracker.Role): string {
  return role === tracker.Role.Admin ? "admin" : "viewer";
}

/** The account dialogs of one signed-in session. `dispose()` unhooks them. */
export class AccountDialogs {
  readonly #el = {
    addDevice: element<HTMLButtonElement>("add-device"),
    addDeviceDialog: element<HTMLDialogElement>("add-device-dialog"),
    addDeviceForm: element<HTMLFormElement>("add-device-form"),
    newDeviceName: element<HTMLInputElement>("new-device-name"),
    addDeviceError: element("add-device-error"),
    enrolment: element("enrolment"),
    enrolmentQr: element<HTMLImageElement>("enrolment-qr"),
    enrolmentUri: element("enrolment-uri"),
    usersButton: element<HTMLButtonElement>("users-button"),
    usersDialog: element<HTMLDialogElement>("users-dialog"),
    usersList: element("users-list"),
    usersError: element("users-error"),
    addUserForm: element<HTMLFormElement>("add-user-form"),
    newUserName: element<HTMLInputElement>("new-user-name"),
    newUserPassword: element<HTMLInputElement>("new-user-password"),
    newUserRole: element<HTMLSelectElement>("new-user-role"),
    shareDialog: element<HTMLDialogElement>("share-dialog"),
    shareTitle: element("share-device-name"),
    shareOwner: element("share-owner"),
    shareList: element("share-list"),
    shareForm: element<HTMLFormElement>("share-form"),
    shareUser: element<HTMLInputElement>("share-user"),
    shareError: element("share-error"),
  };
  readonly #unhook: (() => void)[] = [];
  #shareDevice: { id: bigint; name: string } | undefined;

  /**
   * @param admin whether the user may manage users (the button shows only then; the service checks).
   * @param onDevicesChanged told after a device was added, so the session refreshes its token
   *   (which lists the devices it sees) and its device list.
   */
  constructor(
    private readonly api: tracker.TrackerAccountsClient,
    admin: boolean,
    private readonly onDevicesChanged: () => Promise<void>,
  ) {
    const el = this.#el;
    el.addDevice.hidden = false;
    el.usersButton.hidden = !admin;
    this.#on(el.addDevice, "click", () => this.#openAddDevice());
    this.#on(el.addDeviceForm, "submit", (event) => {
      event.preventDefault();
      void this.#addDevice();
    });
    this.#on(el.usersButton, "click", () => void this.#openUsers());
    this.#on(el.addUserForm, "submit", (event) => {
      event.preventDefault();
      void this.#addUser();
    });
    this.#on(el.shareForm, "submit", (event) => {
      event.preventDefault();
      void this.#share();
    });
  }

  /** Opens the share dialog of a device. */
  async openShare(deviceId: bigint, name: string): Promise<void> {
    this.#shareDevice = { id: deviceId, name };
    this.#el.shareTitle.textContent = name;
    this.#el.shareUser.value = "";
    this.#el.shareDialog.showModal();
    await this.#loadShares();
  }

  dispose(): void {
    for (const unhook of this.#unhook) unhook();
    this.#el.addDevice.hidden = true;
    this.#el.usersButton.hidden = true;
    for (const dialog of [this.#el.addDeviceDialog, this.#el.usersDialog, this.#el.shareDialog]) dialog.close();
  }

  #on<K extends keyof HTMLElementEventMap>(target: HTMLElement, type: K, handler: (event: HTMLElementEventMap[K]) => void): void {
    target.addEventListener(type, handler);
    this.#unhook.push(() => target.removeEventListener(type, handler));
  }

  #openAddDevice(): void {
    const el = this.#el;
    el.newDeviceName.value = "";
    el.enrolment.hidden = true;
    el.enrolmentQr.removeAttribute("src");
    el.enrolmentUri.textContent = "";
    showError(el.addDeviceError, undefined);
    el.addDeviceDialog.showModal();
    el.newDeviceName.focus();
  }

  async #addDevice(): Promise<void> {
    const el = this.#el;
    const name = el.newDeviceName.value.trim();
    if (!name) return showError(el.addDeviceError, "Name the device first.");
    try {
      const reply = await this.api.addDevice(new tracker.AddDeviceT({ name }));
      const svg = reply.qrSvg() ?? "";
      // As an image: the SVG cannot run anything there.
      el.enrolmentQr.src = `data:image/svg+xml;base64,${btoa(svg)}`;
      el.enrolmentQr.dataset.deviceId = reply.deviceId().toString();
      el.enrolmentUri.textContent = reply.uri() ?? "";
      el.enrolment.hidden = false;
      showError(el.addDeviceError, undefined);
      await this.onDevicesChanged();
    } catch (error) {
      showError(el.addDeviceError, `could not add the device: ${explain(error)}`);
    }
  }

  async #openUsers(): Promise<void> {
    showError(this.#el.usersError, undefined);
    this.#el.usersDialog.showModal();
    await this.#loadUsers();
  }

  async #loadUsers(): Promise<void> {
    const el = this.#el;
    try {
      const reply = await this.api.users(new tracker.ListUsersT());
      const items: HTMLElement[] = [];
      for (let i = 0; i < reply.usersLength(); i += 1) {
        const user = reply.users(i);
        if (user) items.push(this.#userItem(user));
      }
      el.usersList.replaceChildren(...items);
    } catch (error) {
      showError(el.usersError, `could not list the users: ${explain(error)}`);
    }
  }

  #userItem(user: tracker.User): HTMLElement {
    const item = document.createElement("li");
    const id = user.id();
    item.dataset.userId = id.toString();
    item.dataset.role = roleName(user.role());
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = user.name() ?? "";
    const role = document.createElement("select");
    role.className = "role";
    role.setAttribute("aria-label", `role of ${user.name()}`);
    for (const value of ["viewer", "admin"]) role.add(new Option(value, value, false, value === item.dataset.role));
    role.addEventListener("change", () => {
      const wanted = role.value === "admin" ? tracker.Role.Admin : tracker.Role.Viewer;
      void this.#usersCall(() => this.api.updateUser(new tracker.UpdateUserT({ id, role: wanted, setRole: true })));
    });
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "delete";
    remove.textContent = "Delete";
    remove.addEventListener("click", () => {
      void this.#usersCall(() => this.api.deleteUser(new tracker.DeleteUserT({ id })));
    });
    item.append(name, role, remove);
    return item;
  }

  async #addUser(): Promise<void> {
    const el = this.#el;
    const role = el.newUserRole.value === "admin" ? tracker.Role.Admin : tracker.Role.Viewer;
    const request = new tracker.AddUserT({ name: el.newUserName.value.trim(), password: el.newUserPassword.value, role });
    if (await this.#usersCall(() => this.api.addUser(request))) {
      el.newUserName.value = "";
      el.newUserPassword.value = "";
    }
  }

  /** Runs a change to the users, shows its error or lists the users again; whether it worked. */
  async #usersCall(call: () => Promise<unknown>): Promise<boolean> {
    try {
      await call();
      showError(this.#el.usersError, undefined);
      await this.#loadUsers();
      return true;
    } catch (error) {
      showError(this.#el.usersError, explain(error));
      await this.#loadUsers();
      return false;
    }
  }

  async #loadShares(): Promise<void> {
    const el = this.#el;
    const device = this.#shareDevice;
    if (!device) return;
    try {
      const reply = await this.api.shares(new tracker.ListSharesT({ deviceId: device.id }));
      el.shareOwner.textContent = reply.owner() ? `Owned by ${reply.owner()}.` : "No owner.";
      const items: HTMLElement[] = [];
      for (let i = 0; i < reply.usersLength(); i += 1) {
        const user = reply.users(i);
        if (user === null) continue;
        const item = document.createElement("li");
        item.dataset.user = user;
        const name = document.createElement("span");
        name.textContent = user;
        const stop = document.createElement("button");
        stop.type = "button";
        stop.className = "unshare";
        stop.textContent = "Stop sharing";
        stop.addEventListener("click", () => {
          void this.#shareCall(() => this.api.unshare(new tracker.UnshareT({ deviceId: device.id, userName: user })));
        });
        item.append(name, stop);
        items.push(item);
      }
      el.shareList.replaceChildren(...items);
      showError(el.shareError, undefined);
    } catch (error) {
      el.shareList.replaceChildren();
      showError(el.shareError, `could not list the shares: ${explain(error)}`);
    }
  }

  async #share(): Promise<void> {
    const device = this.#shareDevice;
    const userName = this.#el.shareUser.value.trim();
    if (!device || !userName) return;
    if (await this.#shareCall(() => this.api.share(new tracker.ShareT({ deviceId: device.id, userName })))) {
      this.#el.shareUser.value = "";
    }
  }

  async #shareCall(call: () => Promise<unknown>): Promise<boolean> {
    try {
      await call();
      await this.#loadShares();
      return true;
    } catch (error) {
      showError(this.#el.shareError, explain(error));
      return false;
    }
  }
}

function showError(out: HTMLElement, text: string | undefined): void {
  out.hidden = text === undefined;
  out.textContent = text ?? "";
}
